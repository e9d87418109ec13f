"""What goes into a store and what comes back out of it: the library's shared document and result types."""

from edgecolbert.documents import DocumentLike, Hit, Result, StoreDocument, as_document

__all__ = ["DocumentLike", "Hit", "Result", "StoreDocument", "as_document"]
