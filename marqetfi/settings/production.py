"""Production: secrets must come from the environment; cookies and transport are locked down."""

import environ

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
