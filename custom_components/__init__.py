"""Custom integrations: Hearth's (hearth/), the folder Home Assistant and HACS load."""
