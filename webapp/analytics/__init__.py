"""Dashboard → Analytics: aggregated charts across a project's or a job's runs."""
