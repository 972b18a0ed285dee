"""The machine kinds excap knows, keyed by a profile's `kind`: what each one's decoded CAN signals mean.

Per kind: the default state vector of its episodes' steps (exports, `EpisodeReader.steps`), and the joints its
CAN traffic reports (the ROS node's joint states of a real machine). Signal names are `Message.Signal` of the
kind's DBC (schemas/can/machine_signals.md). A third kind is one more `MachineKind` here, next to its profile,
its DBC and, to simulate it, its entry in `excap.drivers.sim.machines`.
"""

from dataclasses import dataclass

from excap.core.errors import ConfigError


@dataclass(frozen=True)
class JointSignal:
    """A joint angle from a decoded CAN signal in degrees; with `relative_to`, the difference of two absolute
    angles (an inclinometer reports the link's pitch to horizontal, the joint is the angle between two links)."""

    name: str
    signal: str
    relative_to: str = ""


@dataclass(frozen=True)
class MachineKind:
    kind: str
    state_signals: tuple[str, ...]
    """The default state vector of a step, in order (the signals an episode lacks are left out)."""
    joints: tuple[JointSignal, ...]
    """The joints the machine's CAN traffic reports, in the order they are published."""

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(joint.name for joint in self.joints)


MACHINE_KINDS: dict[str, MachineKind] = {entry.kind: entry for entry in (
    MachineKind(
        "excavator",
        state_signals=("BoomSSI2.PitchAngleExRange", "ArmSSI2.PitchAngleExRange", "BucketSSI2.PitchAngleExRange",
                       "SwingStatus.SwingAngle", "EEC1.EngSpeed"),
        joints=(JointSignal("swing", "SwingStatus.SwingAngle"),
                JointSignal("boom", "BoomSSI2.PitchAngleExRange"),
                JointSignal("arm", "ArmSSI2.PitchAngleExRange", relative_to="BoomSSI2.PitchAngleExRange"),
                JointSignal("bucket", "BucketSSI2.PitchAngleExRange", relative_to="ArmSSI2.PitchAngleExRange"))),
    MachineKind(
        "wheel_loader",
        state_signals=("LoaderArticulation.ArticulationAngle", "LoaderLinkage.LiftAngle", "LoaderLinkage.BucketAngle",
                       "LoaderPressures.LiftHeadPressure", "LoaderPressures.LiftRodPressure",
                       "LoaderPressures.TiltHeadPressure", "LoaderPressures.TiltRodPressure",
                       "LoaderTravel.GroundSpeed", "ETC2.TransCurrentGear", "LoaderPayload.BucketPayload",
                       "EEC1.EngSpeed"),
        joints=(JointSignal("articulation", "LoaderArticulation.ArticulationAngle"),
                JointSignal("lift", "LoaderLinkage.LiftAngle"),
                JointSignal("tilt", "LoaderLinkage.BucketAngle"))),
)}


def machine_kind(kind: str) -> MachineKind:
    """The entry of a profile `kind`; ConfigError naming the known kinds if there is none."""
    try:
        return MACHINE_KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown machine kind {kind!r} (known: {', '.join(MACHINE_KINDS)})") from None


__all__ = ["MACHINE_KINDS", "JointSignal", "MachineKind", "machine_kind"]
