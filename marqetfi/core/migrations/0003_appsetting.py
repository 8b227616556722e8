"""``AppSetting`` moves from providers to the kernel: same table, same rows.

Only Django's model state moves (``SeparateDatabaseAndState``); the table keeps its name
``providers_appsetting``. The content type follows so permissions and admin history stay
attached to the model.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_to_core(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="core", model="appsetting").exists():
        ContentType.objects.filter(app_label="providers", model="appsetting").update(app_label="core")


def content_type_to_providers(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="providers", model="appsetting").exists():
        ContentType.objects.filter(app_label="core", model="appsetting").update(app_label="providers")


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0002_auditentry"),
        ("providers", "0003_paper_venue_book"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AppSetting",
                    fields=[
                        ("key", models.CharField(max_length=64, primary_key=True, serialize=False)),
                        ("value", models.JSONField()),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "updated_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "providers_appsetting"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_core, content_type_to_providers),
    ]
