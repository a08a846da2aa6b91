"""The label store's aggregates, one module each over the shared label_store.tx.Transactions."""
