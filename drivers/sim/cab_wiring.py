"""How the simulated machines' controllers read their cab joysticks: fixed wiring, as on the real machines.

This is the machine's documented convention (`schemas/can/cab_controls.md`), written out here on its
own and never taken from a machine profile: the command path emulates the cab joysticks with the
profile's `cab_joysticks` layout, and if that layout disagreed with the machine (a flipped sign, a
swapped source address), the simulated machine would move the wrong way, as a real one would.
"""

from excap.drivers.machine.cab_joysticks import CabAxis, CabJoystick, CabJoystickLayout

LEFT_JOYSTICK = 0x2B
RIGHT_JOYSTICK = 0x2C
TRAVEL_LEVERS = 0x2D

EXCAVATOR_CAB = CabJoystickLayout(
    rate_hz=50.0,
    joysticks=(
        # left stick: X right = swing right (swing -), Y forward = arm out (arm -); button 1 = pilot enable
        CabJoystick("left", LEFT_JOYSTICK, x=CabAxis("swing", -1.0), y=CabAxis("arm", -1.0)),
        # right stick: X right = bucket dump (bucket -), Y forward = boom lower (boom -)
        CabJoystick("right", RIGHT_JOYSTICK, x=CabAxis("bucket", -1.0), y=CabAxis("boom", -1.0)),
        # travel levers: X = left track, Y = right track, forward = forward
        CabJoystick("travel", TRAVEL_LEVERS, x=CabAxis("travel_left", 1.0), y=CabAxis("travel_right", 1.0)),
    ),
    enable_joystick="left",
    enable_button=1,
)
"""The excavator's cab: which BJM1 source address and axis drives each machine function, with which sign."""

LOADER_ARM_LEVER = 0x2B
LOADER_STEERING = 0x2C
LOADER_PEDALS = 0x2D
LOADER_FNR = 0x2E

LOADER_CAB = CabJoystickLayout(
    rate_hz=50.0,
    joysticks=(
        # loader arm lever: X right = bucket dump (tilt -), Y forward = boom lower (lift -); button 1 = enable
        CabJoystick("arm", LOADER_ARM_LEVER, x=CabAxis("tilt", -1.0), y=CabAxis("lift", -1.0)),
        # steering joystick: X right = articulate right (steer -)
        CabJoystick("steering", LOADER_STEERING, x=CabAxis("steer", -1.0), y=None),
        # pedals: X = accelerator, Y = service brake, 0 released .. 100 % floored
        CabJoystick("pedals", LOADER_PEDALS, x=CabAxis("throttle", 1.0), y=CabAxis("brake", 1.0)),
        # forward-neutral-reverse switch on X: +100 % forward, -100 % reverse
        CabJoystick("fnr", LOADER_FNR, x=CabAxis("direction", 1.0), y=None),
    ),
    enable_joystick="arm",
    enable_button=1,
)
"""The wheel loader's cab: which BJM1 source address and axis drives each machine function, with which sign."""
