# a CTF challenge: the default profile, and no shells
include default
deny execve execveat
errno:EPERM socket
