"""Data contracts (ODCS v3 YAML under data_contracts/) and what is derived from them: pandera schemas, GX suites."""
