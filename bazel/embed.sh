#!/bin/sh
# Turns a file into a C source defining `const unsigned char SYM[]` and
# `const size_t SYM_len`. Usage: embed.sh SYMBOL INPUT OUTPUT.c
set -eu
sym="$1"; in="$2"; out="$3"
{
    echo "/* Generated from $in by bazel/embed.sh; do not edit. */"
    echo "#include <stddef.h>"
    echo "const unsigned char ${sym}[] = {"
    od -An -v -tx1 "$in" | sed -e 's/  */ /g' -e 's/^ //' -e '/^$/d' -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'
    echo "0x00};"
    echo "const size_t ${sym}_len = sizeof(${sym}) - 1;"
} > "$out"
