"""The directory: areas, schools, agencies, people and their role grants."""
