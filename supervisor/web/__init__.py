"""The web dashboard (`fleet dashboard`): a standard-library HTTP server and the page's assets."""
