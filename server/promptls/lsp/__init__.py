"""The language server: adapters that fetch a document, call the analysis core, and convert."""
