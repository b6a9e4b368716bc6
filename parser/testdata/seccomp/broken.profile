default allow
deny ptrace ptrase
deny @mounts
forbid kill
