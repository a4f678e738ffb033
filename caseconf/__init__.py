"""caseconf: multi-agency case conferences for education inclusion teams."""
