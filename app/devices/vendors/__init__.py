"""Device profiles, one module per vendor; each registers its DeviceProfile with app.devices.profile.register."""
