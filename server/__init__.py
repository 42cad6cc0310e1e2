"""quality-forms: forms and surveys on phones for the Quality Month campaign."""

__version__ = "0.1.0"
