"""What a spec file declares and how it is read: the record shape (kind), the spec model, its reference text, the target tables."""
