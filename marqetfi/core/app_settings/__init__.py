"""Runtime settings: defined in code by each app, overridden by operators with ``AppSetting`` rows.

- ``definitions``: what a setting is (``AppSettingDefinition``) and the validators apps build theirs with;
- ``registry``: every definition, collected from ``settings.APP_SETTING_MODULES``;
- ``cache``: ``app_setting()``, the per-process cache and its Redis generation;
- ``services``: ``app_setting_set`` / ``app_setting_reset``, validated and audited;
- ``signals``: the hooks that keep each process current; ``platform``: the kernel's own settings.
"""
