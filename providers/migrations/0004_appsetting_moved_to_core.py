"""``AppSetting`` now belongs to the kernel (core 0003); its table stays where it is."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("providers", "0003_paper_venue_book"),
        ("core", "0003_appsetting"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AppSetting")],
            database_operations=[],
        ),
    ]
