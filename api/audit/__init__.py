"""The audit trail: who did or saw what, when and from where; append-only and hash-chained."""

from api.audit.log import AuditLog, AuditRecord, VerifyResult

__all__ = ["AuditLog", "AuditRecord", "VerifyResult"]
