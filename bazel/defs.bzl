"""Build macros for wa-gateway: protobuf-c code generation and file embedding.

Both call tools from Debian packages (protoc-c, protoc, od) inside genrules,
so nothing is downloaded at build time.
"""

def proto_c_library(name, srcs, deps = [], includes = [], visibility = None):
    """Compiles .proto files in this package to a protobuf-c cc_library.

    Args:
      name: the cc_library's name.
      srcs: .proto files of this package.
      deps: other proto_c_library targets whose messages these import.
      includes: extra -I directories outside the workspace (e.g.
        /usr/share/grpc-proto for Debian's grpc-proto files).
      visibility: passed to the cc_library.
    """
    pkg = native.package_name()
    c_outs = [s[:-len(".proto")] + ".pb-c.c" for s in srcs]
    h_outs = [s[:-len(".proto")] + ".pb-c.h" for s in srcs]
    inc = " ".join(["-I" + i for i in includes])
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = c_outs + h_outs,
        cmd = "protoc-c -I. %s --c_out=$(GENDIR) %s" % (
            inc,
            " ".join(["%s/%s" % (pkg, s) if pkg else s for s in srcs]),
        ),
    )
    native.cc_library(
        name = name,
        srcs = c_outs,
        hdrs = h_outs,
        # Generated code is not held to our warning flags.
        copts = ["-Wno-error", "-Wno-unused-parameter"],
        deps = deps + ["//bazel:protobuf_c"],
        visibility = visibility,
    )

def proto_descriptor_set(name, srcs, includes = [], visibility = None):
    """Writes a FileDescriptorSet (with imports) for srcs to NAME.pb.

    Used by the gRPC server reflection service.
    """
    pkg = native.package_name()
    inc = " ".join(["-I" + i for i in includes])
    native.genrule(
        name = name,
        srcs = srcs,
        outs = [name + ".pb"],
        cmd = "protoc -I. %s --include_imports --include_source_info --descriptor_set_out=$@ %s" % (
            inc,
            " ".join(["%s/%s" % (pkg, s) if pkg else s for s in srcs]),
        ),
        visibility = visibility,
    )

def c_embed(name, src, symbol, visibility = None):
    """Embeds a file as `const unsigned char SYMBOL[]` + `SYMBOL_len` in a cc_library."""
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = [name + ".c"],
        tools = ["//bazel:embed.sh"],
        cmd = "$(location //bazel:embed.sh) %s $< $@" % symbol,
    )
    native.cc_library(
        name = name,
        srcs = [name + ".c"],
        visibility = visibility,
    )

def fuzz_target(name, srcs, deps = [], corpus = None):
    """A libFuzzer target and its replay test.

    Creates NAME (a cc_binary linked with -fsanitize=fuzzer; tagged manual and
    "fuzzer", built only by bazel/fuzz.sh with clang and --config=fuzz) and
    NAME_replay (a cc_test that runs every file of `corpus` through the same
    LLVMFuzzerTestOneInput with gcc, so past crashes stay regression tests).
    """
    native.cc_binary(
        name = name,
        testonly = True,
        srcs = srcs,
        deps = deps,
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual", "fuzzer"],
    )
    if corpus:
        native.cc_test(
            name = name + "_replay",
            size = "small",
            srcs = srcs,
            deps = deps + ["//tests:fuzz_driver"],
            args = ["$(locations %s)" % corpus],
            data = [corpus],
        )

def proto_c_library_system(name, files, include_dir, visibility = None):
    """Compiles .proto files installed by a Debian package (outside the
    workspace) to a protobuf-c cc_library, keeping their canonical import
    paths (e.g. "grpc/health/v1/health.proto") so that generated code and
    descriptors name them as everyone else does.

    Args:
      name: the cc_library's name.
      files: proto paths relative to include_dir.
      include_dir: the system directory, e.g. /usr/share/grpc-proto.
    """
    out_dir = name + "_pb"
    c_outs = ["%s/%s.pb-c.c" % (out_dir, f[:-len(".proto")]) for f in files]
    h_outs = ["%s/%s.pb-c.h" % (out_dir, f[:-len(".proto")]) for f in files]
    native.genrule(
        name = name + "_gen",
        outs = c_outs + h_outs,
        cmd = "protoc-c -I%s --c_out=$(GENDIR)/%s/%s %s" % (
            include_dir,
            native.package_name(),
            out_dir,
            " ".join(files),
        ),
    )
    native.cc_library(
        name = name,
        srcs = c_outs,
        hdrs = h_outs,
        includes = [out_dir],
        copts = ["-Wno-error", "-Wno-unused-parameter"],
        deps = ["//bazel:protobuf_c"],
        visibility = visibility,
    )

def proto_descriptor_set_system(name, files, include_dir, visibility = None):
    """A FileDescriptorSet (with imports) of system .proto files."""
    native.genrule(
        name = name,
        outs = [name + ".pb"],
        cmd = "protoc -I%s --include_imports --descriptor_set_out=$@ %s" % (
            include_dir,
            " ".join(files),
        ),
        visibility = visibility,
    )
