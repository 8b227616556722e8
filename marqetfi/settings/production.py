"""Production: secrets must come from the environment; cookies and transport are locked down."""

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts.verification.origins import siwe_production_problems
from marqetfi.core.deploy_checks import production_credentials_problems

from .base import *

_env = environ.Env()
SECRET_KEY = _env.str("SECRET_KEY")
FIELD_ENCRYPTION_KEYS = _env.list("FIELD_ENCRYPTION_KEYS")
SIMPLE_JWT["SIGNING_KEY"] = SECRET_KEY
DEBUG = False
WHITENOISE_USE_FINDERS = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = _env.int("SECURE_HSTS_SECONDS", default=31536000)
# Plain http is redirected to https (behind the TLS proxy: BEHIND_TLS_PROXY=true, so that
# X-Forwarded-Proto says how the client came); /api/v1/health is exempt (SECURE_REDIRECT_EXEMPT).
SECURE_SSL_REDIRECT = _env.bool("SECURE_SSL_REDIRECT", default=True)

# Sign-in messages from our public site only: never a development host, never plain http.
SIWE_DOMAINS = _env.list("SIWE_DOMAINS", default=["app.marqetfi.com"])
SIWE_URI_ORIGINS = _env.list(
    "SIWE_URI_ORIGINS", default=_env.list("SIWE_URI_PREFIXES", default=["https://app.marqetfi.com"])
)
if _siwe_problems := siwe_production_problems(domains=SIWE_DOMAINS, uri_origins=SIWE_URI_ORIGINS):
    raise ImproperlyConfigured("; ".join(_siwe_problems))

# The demo (seed_demo, the local chain) is for `make run` only.
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "demo"]
if _credential_problems := production_credentials_problems(
    email_backend=EMAIL_BACKEND,
    secret_key=SECRET_KEY,
    field_encryption_keys=FIELD_ENCRYPTION_KEYS,
    environ=_env.ENVIRON,
    var_dir=VAR_DIR,
    provider_options={name: provider["options"] for name, provider in PROVIDERS.items()},
):
    raise ImproperlyConfigured("Production settings refused: " + "; ".join(_credential_problems))
