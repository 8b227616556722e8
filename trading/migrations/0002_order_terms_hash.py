from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="terms_hash",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Fingerprint of the terms asked for: a reused client_order_id must ask the same.",
                max_length=64,
            ),
        ),
    ]
