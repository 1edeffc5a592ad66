importstr 'outside.libsonnet'
