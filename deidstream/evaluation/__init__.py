"""``deidstream evaluate``: privacy and utility of an anonymised video against its original."""
