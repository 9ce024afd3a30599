"""graphcomms: the Microsoft Graph calling API with service-hosted media."""

__version__ = "0.1.0"
