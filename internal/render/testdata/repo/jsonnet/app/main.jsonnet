// A function file: Argo CD passes its tlas as top-level arguments.
local k = import 'k.libsonnet'; // from the libs folder
local parts = import 'parts/labels.libsonnet'; // relative to this file
function(replicas=1)
  [
    k.configMap(std.extVar('app') + '-config', { env: std.extVar('env'), labels: std.toString(parts) }),
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: std.extVar('app'), labels: parts },
      spec: { replicas: replicas },
    },
  ]
