"""Small licensed assets shipped with mono_ssl (see ATTRIBUTION.txt here)."""
