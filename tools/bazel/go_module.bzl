"""A repository rule that fetches Bazel rule sets published as Go modules.

Bazel 4.2.3 (Debian's bazel-bootstrap, the only Bazel these machines can
install) cannot download release archives from their usual hosts, but the Go
module proxy serves rules_go and gazelle as module zips that contain their
Starlark files. This rule fetches a module with `go mod download`, checks its
h1: sum, copies it into the repository and applies a patch from this tree.
"""

def _go_module_repository_impl(ctx):
    go = ctx.which("go")
    if go == None:
        fail("go is not on PATH; run bazel through ./bazelw, which puts it there")
    coordinate = "%s@%s" % (ctx.attr.module, ctx.attr.version)

    # Run outside any module so that go.mod files around the workspace do not matter.
    result = ctx.execute(
        [go, "mod", "download", "-json", coordinate],
        environment = {"GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
        timeout = 600,
    )
    if result.return_code != 0:
        fail("go mod download %s failed:\n%s%s" % (coordinate, result.stdout, result.stderr))
    info = json.decode(result.stdout)
    if info.get("Error"):
        fail("go mod download %s: %s" % (coordinate, info["Error"]))
    if info["Sum"] != ctx.attr.sum:
        fail("%s has sum %s, want %s" % (coordinate, info["Sum"], ctx.attr.sum))

    # The module cache is read-only; copy and make the copy writable for the patch.
    result = ctx.execute(["cp", "-R", info["Dir"] + "/.", "."])
    if result.return_code != 0:
        fail("copying %s: %s" % (coordinate, result.stderr))
    ctx.execute(["chmod", "-R", "u+w", "."])
    for name in ctx.attr.delete:
        ctx.delete(name)
    for patch in ctx.attr.patches:
        ctx.patch(patch, strip = 1)

go_module_repository = repository_rule(
    implementation = _go_module_repository_impl,
    attrs = {
        "module": attr.string(mandatory = True, doc = "module path, e.g. github.com/bazelbuild/rules_go"),
        "version": attr.string(mandatory = True),
        "sum": attr.string(mandatory = True, doc = "the h1: sum that go.sum would record"),
        "delete": attr.string_list(doc = "paths removed before patching"),
        "patches": attr.label_list(allow_files = True, doc = "patch files applied with strip 1"),
    },
    environ = ["PATH", "GOPROXY", "GOMODCACHE", "GOPATH", "HOME"],
)
