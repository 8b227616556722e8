from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    """allauth for an API: verification and password reset mails link into the app, which posts
    the key back."""

    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: Any) -> str:
        separator = "&" if "?" in settings.EMAIL_VERIFICATION_URL else "?"
        return f"{settings.EMAIL_VERIFICATION_URL}{separator}{urlencode({'key': emailconfirmation.key})}"

    def get_reset_password_from_key_url(self, key: str) -> str:
        separator = "&" if "?" in settings.PASSWORD_RESET_URL else "?"
        return f"{settings.PASSWORD_RESET_URL}{separator}{urlencode({'key': key})}"

    def add_message(self, *args: Any, **kwargs: Any) -> None:
        """No flash messages: API clients never see them."""
