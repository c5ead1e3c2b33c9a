"""Stage 2, render: environment files, virtual-package specs, the JSON schema and CI workflows from the spec."""
