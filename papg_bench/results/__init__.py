"""Result records, paper tables (Markdown, CSV, LaTeX) and plots."""
