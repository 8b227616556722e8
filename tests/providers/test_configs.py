"""Versioned, encrypted provider configuration and its effect on the adapters built."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from marqetfi.core import crypto
from marqetfi.core.models import AuditEntry
from providers import registry, selectors
from providers.models import ProviderConfig
from providers.services import configs

pytestmark = pytest.mark.django_db

SECRET = "privy-secret-v1-abcdef"


@pytest.fixture(autouse=True)
def _fresh_registry(django_capture_on_commit_callbacks):
    registry.reset_cache()
    yield
    registry.reset_cache()


def raw_secret_column(config: ProviderConfig) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secrets_encrypted FROM {ProviderConfig._meta.db_table} WHERE id = %s", [config.pk]
        )
        return str(cursor.fetchone()[0])


def test_a_new_version_is_active_and_its_secret_is_ciphertext(staff):
    config = configs.provider_config_create(
        name="privy", values={"app_id": "app-1"}, secrets={"app_secret": SECRET}, actor=staff, comment="first"
    )
    assert (config.version, config.is_active) == (1, True)
    raw = raw_secret_column(config)
    assert SECRET not in raw
    assert crypto.decrypt(raw)  # a Fernet token under our keys
    assert registry.provider_options("privy")["app_secret"] == SECRET
    assert registry.provider_options("privy")["app_id"] == "app-1"
    public = configs.provider_config_public(config)
    assert public["secrets"] == {"app_secret": "********"}
    assert SECRET not in str(public)


def test_versions_only_grow_and_secrets_not_sent_are_kept(staff):
    configs.provider_config_create(
        name="privy", values={"app_id": "app-1"}, secrets={"app_secret": SECRET}, actor=staff
    )
    second = configs.provider_config_create(name="privy", values={"app_id": "app-2"}, actor=staff)
    assert second.version == 2
    assert list(ProviderConfig.objects.filter(is_active=True).values_list("version", flat=True)) == [2]
    options = registry.provider_options("privy")
    assert (options["app_id"], options["app_secret"]) == ("app-2", SECRET)
    first = ProviderConfig.objects.get(version=1)
    assert first.settings == {"app_id": "app-1"}, "an old version never changes"


def test_rollback_restores_the_earlier_behaviour_as_a_new_version(staff):
    configs.provider_config_create(
        name="privy", values={"app_id": "good"}, secrets={"app_secret": SECRET}, actor=staff
    )
    configs.provider_config_create(
        name="privy", values={"app_id": "broken"}, secrets={"app_secret": "wrong"}, actor=staff
    )
    restored = configs.provider_config_rollback(name="privy", version=1, actor=staff)
    assert restored.version == 3
    options = registry.provider_options("privy")
    assert (options["app_id"], options["app_secret"]) == ("good", SECRET)
    assert ProviderConfig.objects.count() == 3
    actions = list(AuditEntry.objects.order_by("created_at").values_list("action", "actor__email"))
    assert actions == [
        ("provider_config.create", staff.email),
        ("provider_config.create", staff.email),
        ("provider_config.rollback", staff.email),
    ]


def test_diff_shows_options_and_only_which_secrets_changed(staff):
    configs.provider_config_create(
        name="privy", values={"app_id": "a"}, secrets={"app_secret": SECRET}, actor=staff
    )
    configs.provider_config_create(
        name="privy", values={"app_id": "b", "timeout": 5}, secrets={"app_secret": "new-secret"}, actor=staff
    )
    diff = configs.provider_config_diff(name="privy", from_version=1, to_version=2)
    assert diff["settings"] == {"app_id": {"from": "a", "to": "b"}, "timeout": {"from": None, "to": 5}}
    assert diff["secrets"] == {"app_secret": "changed"}
    assert SECRET not in str(diff) and "new-secret" not in str(diff)


def test_unknown_or_misplaced_options_are_refused_and_nothing_is_written(staff):
    with pytest.raises(configs.InvalidProviderConfig) as refused:
        configs.provider_config_create(
            name="privy", values={"app_secret": "oops", "colour": "red"}, actor=staff
        )
    assert set(refused.value.details) == {"app_secret", "colour"}
    assert not ProviderConfig.objects.exists()
    with pytest.raises(configs.UnknownProvider):
        configs.provider_config_create(name="nope", values={}, actor=staff)


def test_a_config_change_rebuilds_the_adapter(staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        configs.provider_config_create(
            name="privy", values={"app_id": "a"}, secrets={"app_secret": SECRET}, actor=staff
        )
    first = registry.adapter("privy")
    assert registry.adapter("privy") is first, "cached while nothing changes"
    with django_capture_on_commit_callbacks(execute=True):
        configs.provider_config_create(name="privy", values={"app_id": "b"}, actor=staff)
    assert registry.adapter("privy") is not first


def test_a_switched_off_provider_is_not_built(staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        configs.provider_set_enabled(name="local", enabled=False, actor=staff)
    with pytest.raises(registry.ProviderNotConfigured):
        registry.adapter("local")
    assert AuditEntry.objects.get().action == "provider.disable"


def test_key_rotation_reencrypts_and_old_keys_decrypt_until_removed(staff):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]):
        config = configs.provider_config_create(
            name="privy", values={"app_id": "a"}, secrets={"app_secret": SECRET}, actor=staff
        )
        before = raw_secret_column(config)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        registry.reset_cache()
        assert registry.provider_options("privy")["app_secret"] == SECRET, "old key still decrypts"
        call_command("rotate_encryption_keys")
        after = raw_secret_column(config)
        assert after != before
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        registry.reset_cache()
        assert registry.provider_options("privy")["app_secret"] == SECRET, "re-encrypted under the new key"
        with pytest.raises(crypto.DecryptionError):
            selectors.secrets_decrypt(before)
