"""Pictures of what the platform measures: the panel definition, the local dashboard and HTML reports."""
