-- Argo CD health for FsxBackupSchedule and FsxBackupCopy (the operator's
-- health contract: Stalled -> Degraded, Reconciling -> Progressing,
-- Ready -> Healthy; a spec the operator has not looked at yet -> Progressing).
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil then return hs end
local generation = obj.metadata.generation or 0
if (obj.status.observedGeneration or 0) < generation then return hs end
local conditions = {}
for _, c in ipairs(obj.status.conditions or {}) do conditions[c.type] = c end
local stalled, reconciling, ready = conditions["Stalled"], conditions["Reconciling"], conditions["Ready"]
if stalled ~= nil and stalled.status == "True" then
  return {status = "Degraded", message = stalled.message}
end
if reconciling ~= nil and reconciling.status == "True" then
  return {status = "Progressing", message = reconciling.message}
end
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = ready.message}
end
if ready ~= nil then return {status = "Degraded", message = ready.message} end
return hs
