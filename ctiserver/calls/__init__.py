"""Telephony in the core: the B2BUA call control (pure) and its SIP and ACD adapters."""
