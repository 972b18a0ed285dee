"""CAN: J1939 identifiers, DBC decoding and bus capture through python-can."""
