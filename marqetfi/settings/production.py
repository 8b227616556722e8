"""Production: secrets must come from the environment; cookies and transport are locked down."""

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts.verification.origins import siwe_production_problems

from .base import *

_env = environ.Env()
SECRET_KEY = _env.str("SECRET_KEY")
FIELD_ENCRYPTION_KEYS = _env.list("FIELD_ENCRYPTION_KEYS")
SIMPLE_JWT["SIGNING_KEY"] = SECRET_KEY
DEBUG = False
WHITENOISE_USE_FINDERS = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_HSTS_SECONDS = _env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True

# Sign-in messages from our public site only: never a development host, never plain http.
SIWE_DOMAINS = _env.list("SIWE_DOMAINS", default=["app.marqetfi.com"])
SIWE_URI_ORIGINS = _env.list(
    "SIWE_URI_ORIGINS", default=_env.list("SIWE_URI_PREFIXES", default=["https://app.marqetfi.com"])
)
if _siwe_problems := siwe_production_problems(domains=SIWE_DOMAINS, uri_origins=SIWE_URI_ORIGINS):
    raise ImproperlyConfigured("; ".join(_siwe_problems))
