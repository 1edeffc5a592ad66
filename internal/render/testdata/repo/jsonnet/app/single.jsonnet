{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'single' }, data: { n: std.toString(std.length(std.range(1, 3))) } }
