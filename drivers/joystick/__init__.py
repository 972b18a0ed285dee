"""Operator joysticks: USB HID (inputs), industrial serial (pyserial) and J1939 (CAN)."""
