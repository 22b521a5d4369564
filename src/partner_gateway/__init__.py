"""Partner Gateway: a multi-channel messaging gateway for partner companies."""
