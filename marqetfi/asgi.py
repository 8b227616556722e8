"""ASGI entry point for daphne: HTTP goes to Django (cached price reads are answered in front of
it, see ``pricing.fast_path``; the others wait their turn in ``marqetfi.core.admission``), ``/ws``
to Channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marqetfi.settings.base")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does first

from marqetfi.core.asgi_handler import ThreadedChainASGIHandler  # noqa: E402

django_asgi_app = ThreadedChainASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from marqetfi.core.admission import RequestAdmission  # noqa: E402
from marqetfi.core.websocket_security import websocket_origin_validator  # noqa: E402
from marqetfi.routing import websocket_urlpatterns  # noqa: E402
from pricing.fast_path import CachedPriceRoute  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": CachedPriceRoute(RequestAdmission(django_asgi_app)),
        "websocket": websocket_origin_validator(URLRouter(websocket_urlpatterns)),
    }
)

from marqetfi.core.gc_tuning import web_process_gc_tune  # noqa: E402

web_process_gc_tune()  # after everything above is loaded, so it is frozen out of collections
