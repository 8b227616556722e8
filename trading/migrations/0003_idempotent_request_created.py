from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0002_order_terms_hash"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="idempotentrequest",
            index=models.Index(fields=["created_at"], name="idempotent_request_created"),
        ),
    ]
