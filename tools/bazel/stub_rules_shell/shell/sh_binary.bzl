"""sh_binary, forwarded to the native rule as rules_shell does before Bazel 8."""

def sh_binary(**kwargs):
    native.sh_binary(**kwargs)
