"""Azure Files, path-style (`/ACCOUNT/share/dir/file`): shares, directories, files, SharedKey and SAS."""
