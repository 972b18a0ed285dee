"""The station's local web page and its JSON API."""
