"""The package's version, in one place (the package root and every manifest read it from here)."""

__version__ = "0.1.0"
