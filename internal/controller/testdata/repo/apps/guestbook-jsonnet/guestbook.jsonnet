// Argo CD passes the tlas to a file that is a function.
local params = import 'params.libsonnet';
local labels = import 'labels.libsonnet'; // from spec.source.directory.jsonnet.libs

function(color='blue')
  [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: params.name, labels: labels },
      spec: {
        ports: [{ port: params.port, targetPort: params.targetPort }],
        selector: { app: params.name },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: params.name + '-settings', labels: labels },
      data: { color: color, app: std.extVar('app') },
    },
  ]
