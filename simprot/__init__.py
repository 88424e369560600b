"""SimProt: the contact centre's binary client protocol (see docs/simprot.md)."""
