"""Record shapes on the shared core: flat records, households with their persons.

Each shape is a package that declares ``KIND`` (the spec's ``kind:``) and ``LEVELS`` (its levels of
linked records, top first: :func:`llmsynthor.core.levels.chain`), and builds on the layers below
(docs/architecture.md: the record-shape contract). No shape imports another.
"""
