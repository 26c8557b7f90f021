"""The doctor's rule-based checks (format, duplicates, lengths, content, PII, language, balance).

Each module registers small functions with ``tunerail.doctor.registry.register``; the
embedding and MinHash based checks live beside them in their own modules.
"""
