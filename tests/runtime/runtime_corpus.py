"""The documents and queries the torch-free runtime tests use, shared with the script that prepares them."""

DOCUMENTS = {
    "glaciers": "Glaciers retreat in warm summers and the ice sheets lose mass.",
    "bread": "A recipe for sourdough bread: flour, water, salt and patience.",
    "sea": "Melting ice sheets raise the sea level along every coast.",
}
QUERY = "melting glaciers and ice"
# The one folder the prepared checkpoint, its export and a store built with the checkpoint live in.
RUNTIME_DIR_ENV_VAR = "EDGECOLBERT_TEST_RUNTIME_DIR"
CHECKPOINT, EXPORT, STORE = "checkpoint", "export", "store"
