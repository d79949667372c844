// Azure resources for statepump: an Event Hubs namespace and hub with Capture,
// a storage account for snapshots and Capture files, and two user-assigned
// managed identities (the web pods' sidecars, the snapshotter) federated with
// AKS workload identity, each with the least privilege it needs.
//
//   az deployment group create --resource-group <rg> --name statepump \
//     --template-file deploy/azure/main.bicep --parameters deploy/azure/main.parameters.json \
//     --parameters aksOidcIssuerUrl=<issuer>
//
// No connection strings or keys: local (SAS / shared key) authentication is
// disabled on both the namespace and the storage account.

targetScope = 'resourceGroup'

@description('Prefix of every resource name; 3-11 lower-case letters and digits (storage account names allow no dashes).')
@minLength(3)
@maxLength(11)
param baseName string

@description('Region of all resources.')
param location string = resourceGroup().location

@description('Name of the event hub that carries the state\'s events.')
param eventHubName string = 'config'

@description('Partition count of the hub. statepump folds one partition per pump; more partitions means more independent states.')
@minValue(1)
@maxValue(32)
param partitionCount int = 1

@description('How long the hub keeps events, in hours (Standard tier: at most 168). Older events are read from Capture.')
@minValue(1)
@maxValue(168)
param retentionHours int = 24

@description('Capture window: a Capture file is written at least this often per partition, in seconds.')
@minValue(60)
@maxValue(900)
param captureIntervalSeconds int = 300

@description('Capture window size limit in bytes (10 MiB to 500 MiB).')
@minValue(10485760)
@maxValue(524288000)
param captureSizeLimitBytes int = 314572800

@description('Consumer groups in the web pods\' pool (statepump-web-01 ... statepump-web-NN). Event Hubs allows 5 readers per partition and group, so 5 x this many sidecars read the hub directly. Standard allows 20 groups per event hub, $Default and the snapshotter\'s included: 18 at most here (deploy/README.md, "Capacity").')
@minValue(1)
@maxValue(18)
param pumpConsumerGroupCount int = 18

@description('Throughput units of the Standard namespace.')
@minValue(1)
@maxValue(40)
param throughputUnits int = 1

@description('The AKS cluster\'s OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl). Empty: no federated credentials (for VMs, assign the identities to the VM instead).')
param aksOidcIssuerUrl string = ''

@description('Kubernetes namespace of the ServiceAccounts (deploy/kubernetes/namespace.yaml).')
param kubernetesNamespace string = 'statepump'

@description('Kubernetes ServiceAccount of the web pods (deploy/kubernetes/serviceaccounts.yaml).')
param pumpServiceAccount string = 'statepump-web'

@description('Kubernetes ServiceAccount of the snapshotter CronJob (deploy/kubernetes/serviceaccounts.yaml).')
param snapshotterServiceAccount string = 'statepump-snapshotter'

@description('Object IDs of principals that publish events (your services, or yourself for `statepump send`): they get Azure Event Hubs Data Sender on the hub.')
param senderPrincipalIds array = []

@description('Principal type of senderPrincipalIds: ServicePrincipal, User or Group.')
@allowed([
  'ServicePrincipal'
  'User'
  'Group'
])
param senderPrincipalType string = 'ServicePrincipal'

var snapshotContainerName = 'snapshots'
var captureContainerName = 'capture'
var pumpConsumerGroupPrefix = 'statepump-web'
// Numbers padded to the width of the count, as --consumer-group 'statepump-web-{01..18}' expands them.
var pumpConsumerGroupWidth = length(string(pumpConsumerGroupCount))
var pumpConsumerGroupPool = '${pumpConsumerGroupPrefix}-{${padLeft(1, pumpConsumerGroupWidth, '0')}..${pumpConsumerGroupCount}}'
var snapshotterConsumerGroupName = 'statepump-snapshotter'
// Capture's default; statepump's Capture reader expects this layout unless
// told otherwise with --capture-name-format.
var defaultCaptureNameFormat = '{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}'

// Built-in role definition IDs, the same in every tenant. Source: Microsoft
// Learn, "Azure built-in roles" (Analytics: Event Hubs; Storage: blob data roles).
var roleEventHubsDataReceiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
var roleEventHubsDataSender = '2b629674-e913-4c01-ae53-ef4638d8f975'
var roleStorageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var roleStorageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

// ---------------------------------------------------------------- storage

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: '${baseName}${uniqueString(resourceGroup().id)}'
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    // A snapshot deleted by mistake (or by a too-eager --keep) stays
    // recoverable for a week.
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource snapshotBlobContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: snapshotContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource captureBlobContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: captureContainerName
  properties: {
    publicAccess: 'None'
  }
}

// ------------------------------------------------------------- event hubs

resource eventHubsNamespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: '${baseName}-${uniqueString(resourceGroup().id)}'
  location: location
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: throughputUnits
  }
  // Capture writes to the storage account with this identity, because the
  // account accepts no shared keys.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource captureWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: captureBlobContainer
  name: guid(captureBlobContainer.id, eventHubsNamespace.id, roleStorageBlobDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataContributor)
    principalId: eventHubsNamespace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource eventHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubsNamespace
  name: eventHubName
  // Capture checks its access to the container when it is enabled.
  dependsOn: [
    captureWriter
  ]
  properties: {
    partitionCount: partitionCount
    retentionDescription: {
      cleanupPolicy: 'Delete'
      retentionTimeInHours: retentionHours
    }
    captureDescription: {
      enabled: true
      encoding: 'Avro'
      intervalInSeconds: captureIntervalSeconds
      sizeLimitInBytes: captureSizeLimitBytes
      skipEmptyArchives: true
      destination: {
        name: 'EventHubArchive.AzureBlockBlob'
        identity: {
          type: 'SystemAssigned'
        }
        properties: {
          storageAccountResourceId: storage.id
          blobContainer: captureContainerName
          archiveNameFormat: defaultCaptureNameFormat
        }
      }
    }
  }
}

// Separate consumer groups: Event Hubs allows 5 concurrent readers per
// partition and consumer group. The web pods share a pool (each sidecar starts
// at the group its pod name picks and moves on when one is full), and the
// snapshotter has its own, so it never takes a slot the web pods need.
resource pumpGroups 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = [for i in range(1, pumpConsumerGroupCount): {
  parent: eventHub
  name: '${pumpConsumerGroupPrefix}-${padLeft(i, pumpConsumerGroupWidth, '0')}'
  properties: {
    userMetadata: 'statepump sidecars of the web pods'
  }
}]

resource snapshotterGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: eventHub
  name: snapshotterConsumerGroupName
  properties: {
    userMetadata: 'statepump snapshotter'
  }
}

// ------------------------------------------------------------- identities

resource pumpIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${baseName}-pump'
  location: location
}

resource snapshotterIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${baseName}-snapshotter'
  location: location
}

resource pumpFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (!empty(aksOidcIssuerUrl)) {
  parent: pumpIdentity
  name: 'aks-${kubernetesNamespace}-${pumpServiceAccount}'
  properties: {
    issuer: aksOidcIssuerUrl
    subject: 'system:serviceaccount:${kubernetesNamespace}:${pumpServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource snapshotterFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = if (!empty(aksOidcIssuerUrl)) {
  parent: snapshotterIdentity
  name: 'aks-${kubernetesNamespace}-${snapshotterServiceAccount}'
  properties: {
    issuer: aksOidcIssuerUrl
    subject: 'system:serviceaccount:${kubernetesNamespace}:${snapshotterServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

// ------------------------------------------------------- role assignments
// Each scoped as narrowly as it can be: the hub (not the namespace), and each
// container (not the account).

// The sidecar: receives from the hub, reads snapshots and Capture files.
resource pumpReceives 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: eventHub
  name: guid(eventHub.id, pumpIdentity.id, roleEventHubsDataReceiver)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleEventHubsDataReceiver)
    principalId: pumpIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource pumpReadsSnapshots 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: snapshotBlobContainer
  name: guid(snapshotBlobContainer.id, pumpIdentity.id, roleStorageBlobDataReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataReader)
    principalId: pumpIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource pumpReadsCapture 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: captureBlobContainer
  name: guid(captureBlobContainer.id, pumpIdentity.id, roleStorageBlobDataReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataReader)
    principalId: pumpIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The snapshotter: the same reads, and writes/deletes in the snapshot
// container only (Contributor includes read there).
resource snapshotterReceives 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: eventHub
  name: guid(eventHub.id, snapshotterIdentity.id, roleEventHubsDataReceiver)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleEventHubsDataReceiver)
    principalId: snapshotterIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource snapshotterReadsCapture 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: captureBlobContainer
  name: guid(captureBlobContainer.id, snapshotterIdentity.id, roleStorageBlobDataReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataReader)
    principalId: snapshotterIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource snapshotterWritesSnapshots 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: snapshotBlobContainer
  name: guid(snapshotBlobContainer.id, snapshotterIdentity.id, roleStorageBlobDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleStorageBlobDataContributor)
    principalId: snapshotterIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource senders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in senderPrincipalIds: {
  scope: eventHub
  name: guid(eventHub.id, principalId, roleEventHubsDataSender)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleEventHubsDataSender)
    principalId: principalId
    principalType: senderPrincipalType
  }
}]

// ---------------------------------------------------------------- outputs
// What deploy/kubernetes (STATEPUMP_* values, ServiceAccount annotations) and
// deploy/systemd (statepump.toml) need.

@description('--namespace / STATEPUMP_NAMESPACE: the fully qualified Event Hubs namespace.')
output eventHubsNamespaceFqdn string = '${eventHubsNamespace.name}.servicebus.windows.net'

@description('--eventhub')
output hubName string = eventHub.name

@description('--consumer-group of the web pods\' sidecars: the pool, as a numbered range (statepump-web-{01..18}).')
output pumpConsumerGroup string = pumpConsumerGroupPool

@description('How many sidecars can read the hub directly: 5 per partition and consumer group of the pool.')
output pumpDirectReaders int = 5 * pumpConsumerGroupCount

@description('--consumer-group of the snapshotter.')
output snapshotterConsumerGroup string = snapshotterGroup.name

@description('--storage-account-url / STATEPUMP_STORAGE_ACCOUNT_URL')
output storageAccountUrl string = storage.properties.primaryEndpoints.blob

@description('--snapshot-container')
output snapshotContainer string = snapshotBlobContainer.name

@description('--capture-container')
output captureContainer string = captureBlobContainer.name

@description('--capture-name-format')
output captureNameFormat string = defaultCaptureNameFormat

@description('azure.workload.identity/client-id of the statepump-web ServiceAccount.')
output pumpClientId string = pumpIdentity.properties.clientId

@description('azure.workload.identity/client-id of the statepump-snapshotter ServiceAccount.')
output snapshotterClientId string = snapshotterIdentity.properties.clientId

@description('Resource ID of the pump identity, to assign it to a VM (deploy/systemd).')
output pumpIdentityId string = pumpIdentity.id

@description('Resource ID of the snapshotter identity, to assign it to a VM (deploy/systemd).')
output snapshotterIdentityId string = snapshotterIdentity.id
