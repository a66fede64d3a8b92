"""Mail: composed from templates, queued in the outbox in the transaction that needs it, and
delivered by every process's sender (idp.mail.sender)."""
