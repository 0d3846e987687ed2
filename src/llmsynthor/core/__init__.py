"""The data model every shape shares: variables (schema), target tables, records, rules, and counting records into tables."""
