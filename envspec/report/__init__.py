"""Stage 6, report: report.html and report.md from every target's smoke results and lockfiles."""
